/**
 * Plays the person of RFC 8628 at the local provider (oidc-provider's device flow feature) without a browser:
 * opens the verification page, types the user code, confirms (or aborts), signs in as `login` and consents
 * through devInteractions. Returns the last page's HTML ("Sign-in Success" when it worked).
 */

interface Cookie {
  value: string;
  path: string;
}

export async function confirmDeviceCode(
  verificationUri: string,
  userCode: string,
  login: string,
  options: { deny?: boolean } = {},
): Promise<string> {
  const jar = new Map<string, Cookie>();
  async function request(url: URL, init: RequestInit): Promise<Response> {
    const cookie = [...jar]
      .filter(([, c]) => url.pathname.startsWith(c.path))
      .map(([k, c]) => `${k}=${c.value}`)
      .join('; ');
    const headers = new Headers(init.headers);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const expired =
        attrs.some((a) => /^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now()) ||
        attrs.some((a) => /^max-age=0/i.test(a));
      if (expired) jar.delete(pair.slice(0, eq));
      else jar.set(pair.slice(0, eq), { value: pair.slice(eq + 1), path });
    }
    return res;
  }
  const post = (url: URL, fields: Record<string, string>) =>
    request(url, {
      method: 'POST',
      body: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  const formOf = (html: string, id: string) => {
    const action = new RegExp(`id="${id.replace('.', '\\.')}"[^>]*action="([^"]+)"`).exec(html)?.[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    if (!action || !xsrf) throw new Error(`no ${id} form: ${html.slice(0, 300)}`);
    return { action, xsrf };
  };

  let url = new URL(verificationUri);
  const input = formOf(await (await request(url, { method: 'GET' })).text(), 'op.deviceInputForm');
  url = new URL(input.action, url);
  const confirmPage = await (await post(url, { xsrf: input.xsrf, user_code: userCode })).text();
  const confirm = formOf(confirmPage, 'op.deviceConfirmForm');
  url = new URL(confirm.action, url);
  let res = await post(url, {
    xsrf: confirm.xsrf,
    user_code: userCode,
    ...(options.deny ? { abort: 'yes' } : { confirm: 'yes' }),
  });
  for (let hop = 0; hop < 25; hop++) {
    if (res.status >= 300 && res.status < 400) {
      await res.arrayBuffer();
      url = new URL(res.headers.get('location') ?? '', url);
      res = await request(url, { method: 'GET' });
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (!action || !prompt) return html;
    url = new URL(action, url);
    res = await post(url, prompt === 'login' ? { prompt, login, password: 'any' } : { prompt });
  }
  throw new Error('too many redirects at the provider');
}
