import { defineMessages } from '../i18n.js';

/** `mailgate authorize <serverId> --device`: what the person at the terminal reads (LANG picks the language). */
export const device = defineMessages({
  en: {
    'device.prompt':
      'Open {uri} on any device, enter the code {code} and sign in with the mailbox (the code expires in {minutes} minutes). Waiting…',
    'device.authorized': 'Authorized: server {serverId} now sends as {mailbox}.',
    'device.interrupted': 'Interrupted; nothing was changed.',
    'device.failure.not_oauth':
      'Server {serverId} does not use OAuth 2.0: set its authentication to OAuth 2.0 and choose an integration first.',
    'device.failure.not_microsoft':
      'The device code flow is for Microsoft integrations; "{name}" is {provider}. Use Authorize on the server page or a reconnect link.',
    'device.failure.unsupported': 'The provider announces no device authorization endpoint for this integration.',
    'device.failure.expired': 'The code expired before anyone confirmed it. Run the command again.',
    'device.failure.denied': 'Access was denied at the provider; nothing was changed.',
    'device.failure.failed': 'The provider did not complete the authorization ({detail}).',
    'device.failure.unverified': 'The provider says {email} is not verified, so mailgate will not send as it.',
    'device.failure.no_email': 'The signed-in account has no email address in its ID token.',
    'device.failure.wrong_mailbox':
      'You signed in as {mailbox}, but this server sends as {username}. Nothing was changed.',
  },
  ja: {
    'device.prompt':
      '任意の端末で {uri} を開き、コード {code} を入力して、このメールボックスでサインインしてください（コードの有効期限は {minutes} 分です）。待機中…',
    'device.authorized': '認可しました: サーバー {serverId} は {mailbox} として送信します。',
    'device.interrupted': '中断しました。何も変更していません。',
    'device.failure.not_oauth':
      'サーバー {serverId} は OAuth 2.0 を使用していません。先に認証方式を OAuth 2.0 にし、連携を選択してください。',
    'device.failure.not_microsoft':
      'デバイスコードフローは Microsoft の連携専用です。「{name}」は {provider} です。サーバーのページの「認可」か再接続リンクを使ってください。',
    'device.failure.unsupported': 'この連携のプロバイダーはデバイス認可エンドポイントを公開していません。',
    'device.failure.expired': '確認される前にコードの有効期限が切れました。コマンドをもう一度実行してください。',
    'device.failure.denied': 'プロバイダーでアクセスが拒否されました。何も変更していません。',
    'device.failure.failed': 'プロバイダーが認可を完了しませんでした（{detail}）。',
    'device.failure.unverified':
      'プロバイダーによると {email} は未確認のため、mailgate はこのアドレスとして送信しません。',
    'device.failure.no_email': 'サインインしたアカウントの ID トークンにメールアドレスがありません。',
    'device.failure.wrong_mailbox':
      '{mailbox} としてサインインしましたが、このサーバーは {username} として送信します。何も変更していません。',
  },
});
