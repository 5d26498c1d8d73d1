import { describe, expect, it } from 'vitest';
import { addressProblem, composeMessage, displayName, messageInput, recipientsOf } from './compose.js';
import { htmlToText } from './html-text.js';

describe('addresses', () => {
  it.each(['a@example.com', 'first.last+tag@sub.example.co', "o'neil@example.org", 'x@[192.168.1.1]'])(
    'accepts %s',
    (a) => {
      expect(addressProblem(a)).toBeNull();
    },
  );
  it.each([
    'plain',
    '@example.com',
    'a@',
    'a@localhost',
    'a..b@example.com',
    '.a@example.com',
    'a@-example.com',
    'a@example.c0m',
    '"quoted"@example.com',
    'a b@example.com',
    'a@example.com\r\nBcc: evil@example.com',
    'a@example.com\n',
    'a\0@example.com',
    'Name <a@example.com>',
    'a@exa_mple.com',
    'ü@example.com',
  ])('rejects %j', (a) => {
    expect(addressProblem(a)).not.toBeNull();
  });
});

describe('messageInput', () => {
  it('rejects CR/LF in subject and names with the field named', () => {
    const r = messageInput.safeParse({
      to: 'a@example.com',
      subject: 'hi\r\nBcc: x@example.com',
      fromName: 'x\ny',
      text: 't',
    });
    expect(r.success).toBe(false);
    const fields = r.error!.issues.map((i) => i.path.join('.'));
    expect(fields).toEqual(expect.arrayContaining(['subject', 'fromName']));
  });
  it('limits recipients to 100 in total', () => {
    const many = Array.from({ length: 60 }, (_, i) => `u${i}@example.com`);
    expect(messageInput.safeParse({ to: many, cc: many, subject: 's', text: 't' }).success).toBe(false);
    expect(
      messageInput.safeParse({ to: many.slice(0, 50), cc: many.slice(0, 50), subject: 's', text: 't' }).success,
    ).toBe(true);
    expect(messageInput.safeParse({ to: [...many, ...many], subject: 's', text: 't' }).success).toBe(false);
  });
  it('needs text or html and rejects unknown fields and headers mailgate sets itself', () => {
    expect(messageInput.safeParse({ to: 'a@example.com', subject: 's' }).success).toBe(false);
    expect(messageInput.safeParse({ to: 'a@example.com', subject: 's', text: 't', extra: 1 }).success).toBe(false);
    expect(
      messageInput.safeParse({ to: 'a@example.com', subject: 's', text: 't', headers: { 'X-A': '1' } }).success,
    ).toBe(true);
    expect(
      messageInput.safeParse({ to: 'a@example.com', subject: 's', text: 't', headers: { Bcc: 'b@example.com' } })
        .success,
    ).toBe(false);
    expect(messageInput.safeParse({ to: [], subject: 's', text: 't' }).success).toBe(false);
  });
});

describe('composeMessage', () => {
  const sender = { name: 'Ops relay', fromAddress: 'notify@example.com', emailPrefix: '[mailgate]' };
  it('builds From from the format and the server address, prefixes the subject, envelope = all recipients once', () => {
    const m = composeMessage(
      messageInput.parse({
        fromName: 'Joe Bloggs',
        to: ['a@example.com', 'A@example.com'],
        cc: 'c@example.com',
        bcc: ['b@example.com', 'c@example.com'],
        subject: 'Hello',
        html: '<p>Hi &amp; bye</p>',
      }),
      sender,
      '{name} (mailgate)',
    );
    expect(m.from).toEqual({ name: 'Joe Bloggs (mailgate)', address: 'notify@example.com' });
    expect(m.subject).toBe('[mailgate] Hello');
    expect(m.envelope).toEqual({ from: 'notify@example.com', to: ['a@example.com', 'c@example.com', 'b@example.com'] });
    expect(m.to).toEqual(['a@example.com']);
    expect(m.cc).toEqual(['c@example.com']);
    expect(m.text).toBe('Hi & bye');
    expect(m.html).toBe('<p>Hi &amp; bye</p>');
  });
  it('derives html from text when only text is given', () => {
    const m = composeMessage(
      messageInput.parse({ to: 'a@example.com', subject: 's', text: 'a < b\nnext' }),
      sender,
      '{name}',
    );
    expect(m.html).toBe('<p>a &lt; b<br>\nnext</p>');
    expect(m.from.name).toBe('Ops relay');
  });
  it('display name format is literal', () => {
    expect(displayName('$& {name} $1', 'X')).toBe('$& X $1');
  });
  it('a display name never carries an address: a server name with <, >, @ or " loses them', () => {
    expect(displayName('{name} (mailgate)', 'Bank <ceo@bank.example> "official"')).toBe(
      'Bank ceobank.example official (mailgate)',
    );
    const m = composeMessage(
      messageInput.parse({ to: 'a@example.com', subject: 's', text: 't' }),
      { ...sender, name: 'Ops <ops@corp.example>' },
      '{name} (mailgate)',
    );
    expect(m.from.name).toBe('Ops opscorp.example (mailgate)');
    expect(
      messageInput
        .safeParse({ to: 'a@example.com', subject: 's', text: 't', fromName: 'x@y' })
        .error?.issues.map((i) => i.path.join('.')),
    ).toEqual(['fromName']);
  });
  it('recipientsOf keeps to over cc over bcc', () => {
    expect(
      recipientsOf({ to: ['x@example.com'], cc: ['X@example.com', 'y@example.com'], bcc: ['y@example.com'] }),
    ).toEqual([
      { address: 'x@example.com', kind: 'to' },
      { address: 'y@example.com', kind: 'cc' },
    ]);
  });
  it('htmlToText handles links, breaks, lists and scripts', () => {
    expect(
      htmlToText(
        '<p>Go <a href="https://x.example/">here</a></p><ul><li>one</li><li>two</li></ul><script>alert(1)</script>x<br>y',
      ),
    ).toBe('Go here (https://x.example/)\n\n\n- one\n- two\n\nx\ny'.replace(/\n{3,}/g, '\n\n'));
  });
});
