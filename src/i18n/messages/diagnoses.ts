import { defineMessages } from '../i18n.js';

/**
 * What to do about a failed connection or delivery, by diagnosis code (src/mail/diagnose.ts). English pages show
 * the diagnosis's own hint (it names the host and reply); these texts serve other languages, and English
 * when a hint is missing. `{where}` is host:port.
 */
export const diagnoses = defineMessages({
  en: {
    'diagnosis.egress_denied':
      'The host is on a network mailgate may not reach: ask the operator to list it in MAILGATE_EGRESS_ALLOW.',
    'diagnosis.not_smtp': '{where} answered, but not as an SMTP server: check the host and the port (25, 587 or 465).',
    'diagnosis.oauth_needs_reauth':
      'The mailbox authorization is no longer valid: press Re-authorize on the server page.',
    'diagnosis.oauth_not_authorized':
      'No mailbox is authorized for this server yet: press Authorize on the server page.',
    'diagnosis.oauth_token_unavailable':
      'No access token could be obtained right now; mailgate retries. If it persists, check the OAuth 2.0 integration.',
    'diagnosis.smtp_auth_disabled':
      'Microsoft 365 refuses SMTP AUTH for this mailbox (5.7.139): press Switch to Microsoft Graph on the server page, or enable "Authenticated SMTP" for the mailbox.',
    'diagnosis.basic_auth_retired':
      'The provider no longer accepts basic authentication (5.7.30): press Switch to Microsoft Graph on the server page, or switch to OAuth 2.0 and press Authorize.',
    'diagnosis.app_password_required':
      'Gmail refuses the account password (534 5.7.9): use an app password or switch to OAuth 2.0.',
    'diagnosis.must_starttls': '{where} requires STARTTLS: tick TLS, or use SMTPS if the port expects implicit TLS.',
    'diagnosis.auth_failed': 'The server rejected the user name or password (535): check both.',
    'diagnosis.auth_required':
      '{where} requires authentication: choose an authentication method and enter credentials.',
    'diagnosis.relay_denied':
      'The server refuses to relay for this sender or recipient: check the credentials and that the from address belongs to the account.',
    'diagnosis.starttls_unavailable':
      'TLS is on but {where} does not offer STARTTLS: use port 587 with STARTTLS, SMTPS (465), or untick TLS for a trusted local relay.',
    'diagnosis.auth_not_possible':
      'Authentication could not start: check the authentication method and that the server offers AUTH.',
    'diagnosis.server_busy': '{where} is closing connections for now (421); mailgate retries with backoff.',
    'diagnosis.temporary_rejection': '{where} asked to try again later; mailgate retries with backoff.',
    'diagnosis.rejected': '{where} rejected the message: read its reply; it will not be retried.',
    'diagnosis.tls_untrusted':
      'The TLS certificate of {where} is not trusted: add its CA to NODE_EXTRA_CA_CERTS and check the host name.',
    'diagnosis.tls_protocol_mismatch':
      'TLS could not start with {where}: the port probably expects the other protocol (SMTP with TLS, or SMTPS).',
    'diagnosis.connection_refused': 'Nothing accepts connections at {where}: check the host name and the port.',
    'diagnosis.host_unreachable': '{where} cannot be reached: check the host, routing and firewalls.',
    'diagnosis.dns_failed': 'The host name could not be resolved: check its spelling and the DNS.',
    'diagnosis.greeting_timeout':
      '{where} accepted the connection but sent no SMTP greeting: check the protocol (SMTP or SMTPS) or raise the timeout.',
    'diagnosis.timeout': '{where} did not answer in time: check that it is reachable, or raise the timeout.',
    'diagnosis.connection_dropped': '{where} closed the connection unexpectedly; mailgate retries.',
    'diagnosis.tls_failed': 'The TLS handshake with {where} failed: check the protocol and the certificate.',
    'diagnosis.send_failed': 'Sending failed for an unrecognized reason: read the message and the transcript.',
    'diagnosis.send_as_denied':
      'The mailbox is not allowed to send as the From address (SendAsDenied): grant it the "Send As" right on that address, or send from the mailbox itself, then press Resume.',
    'diagnosis.api_unreachable':
      "The provider's mail API could not be reached: mailgate retries with backoff. Check mailgate's outbound HTTPS access.",
    'diagnosis.api_daily_limit':
      'The mailbox reached its daily sending limit at the provider: its mail waits until the limit resets.',
    'diagnosis.api_throttled':
      'The provider asked to slow down for this mailbox: its mail waits until the time the provider gave. Frequent throttling means more mail than one mailbox may send.',
    'diagnosis.api_message_too_large':
      'The provider refused the message as too large: send smaller attachments; it will not be retried.',
    'diagnosis.api_token_rejected':
      'The provider rejected the access token even after a refresh: the authorization lacks the permission to send or was revoked. Press Re-authorize.',
    'diagnosis.api_permission_missing':
      'The app or the mailbox lacks the permission to send (Microsoft: Mail.Send; Google: gmail.send and the Gmail API enabled). Fix it at the provider, then press Resume.',
    'diagnosis.api_mailbox_not_found':
      'The provider does not know the mailbox: check the user name (the mailbox address); Microsoft Graph needs an Exchange Online mailbox.',
    'diagnosis.api_unavailable': "The provider's mail API failed on its side: mailgate retries.",
    'diagnosis.api_rejected': 'The provider rejected the message: read its message; it will not be retried.',
    'diagnosis.server_deleted': 'The SMTP server no longer exists: resend the message through another server.',
  },
  ja: {
    'diagnosis.egress_denied':
      'このホストは mailgate が接続できないネットワーク上にあります。運用担当者に MAILGATE_EGRESS_ALLOW への追加を依頼してください。',
    'diagnosis.not_smtp':
      '{where} は応答しましたが、SMTP サーバーではありません。ホスト名とポート (25、587、465) を確認してください。',
    'diagnosis.oauth_needs_reauth':
      'メールボックスの認可が無効になりました。サーバーのページで「再認可」を押してください。',
    'diagnosis.oauth_not_authorized':
      'このサーバーにはまだメールボックスが認可されていません。サーバーのページで「認可」を押してください。',
    'diagnosis.oauth_token_unavailable':
      '現在アクセストークンを取得できません。mailgate が再試行します。続く場合は OAuth 2.0 連携を確認してください。',
    'diagnosis.smtp_auth_disabled':
      'Microsoft 365 がこのメールボックスの SMTP AUTH を拒否しています (5.7.139)。サーバーのページで「Microsoft Graph に切り替え」を押すか、メールボックスの「SMTP 認証」を有効にしてください。',
    'diagnosis.basic_auth_retired':
      'プロバイダーはベーシック認証を受け付けなくなりました (5.7.30)。サーバーのページで「Microsoft Graph に切り替え」を押すか、OAuth 2.0 に切り替えて「認可」を押してください。',
    'diagnosis.app_password_required':
      'Gmail がアカウントのパスワードを拒否しました (534 5.7.9)。アプリ パスワードを使うか、OAuth 2.0 に切り替えてください。',
    'diagnosis.must_starttls':
      '{where} は STARTTLS を必須としています。TLS をオンにするか、ポートが暗黙的 TLS の場合は SMTPS を使用してください。',
    'diagnosis.auth_failed': 'サーバーがユーザー名またはパスワードを拒否しました (535)。両方を確認してください。',
    'diagnosis.auth_required': '{where} は認証を必要としています。認証方式を選び、資格情報を入力してください。',
    'diagnosis.relay_denied':
      'サーバーがこの送信者または宛先へのリレーを拒否しました。資格情報と、送信元アドレスがアカウントのものであることを確認してください。',
    'diagnosis.starttls_unavailable':
      'TLS がオンですが、{where} は STARTTLS を提供していません。ポート 587 (STARTTLS) か SMTPS (465) を使うか、信頼できるローカルリレーでは TLS をオフにしてください。',
    'diagnosis.auth_not_possible':
      '認証を開始できませんでした。認証方式と、サーバーが AUTH を提供していることを確認してください。',
    'diagnosis.server_busy': '{where} は現在接続を受け付けていません (421)。mailgate が間隔を空けて再試行します。',
    'diagnosis.temporary_rejection':
      '{where} から後で再試行するよう求められました。mailgate が間隔を空けて再試行します。',
    'diagnosis.rejected': '{where} がメッセージを拒否しました。応答を確認してください。再試行はされません。',
    'diagnosis.tls_untrusted':
      '{where} の TLS 証明書が信頼されていません。CA を NODE_EXTRA_CA_CERTS に追加し、ホスト名を確認してください。',
    'diagnosis.tls_protocol_mismatch':
      '{where} と TLS を開始できませんでした。ポートはもう一方のプロトコル (TLS 付き SMTP または SMTPS) を想定している可能性があります。',
    'diagnosis.connection_refused': '{where} で接続を受け付けるものがありません。ホスト名とポートを確認してください。',
    'diagnosis.host_unreachable':
      '{where} に到達できません。ホスト名、ルーティング、ファイアウォールを確認してください。',
    'diagnosis.dns_failed': 'ホスト名を解決できませんでした。綴りと DNS を確認してください。',
    'diagnosis.greeting_timeout':
      '{where} は接続を受け付けましたが、SMTP の応答がありません。プロトコル (SMTP または SMTPS) を確認するか、タイムアウトを長くしてください。',
    'diagnosis.timeout':
      '{where} が時間内に応答しませんでした。到達できるか確認するか、タイムアウトを長くしてください。',
    'diagnosis.connection_dropped': '{where} が予期せず接続を閉じました。mailgate が再試行します。',
    'diagnosis.tls_failed': '{where} との TLS ハンドシェイクに失敗しました。プロトコルと証明書を確認してください。',
    'diagnosis.send_failed': '不明な理由で送信に失敗しました。メッセージと SMTP のやり取りを確認してください。',
    'diagnosis.send_as_denied':
      'このメールボックスには送信元アドレスとして送信する権限がありません (SendAsDenied)。そのアドレスの「送信者」権限を付与するか、メールボックス自身のアドレスから送信してから、「再開」を押してください。',
    'diagnosis.api_unreachable':
      'プロバイダーのメール API に接続できません。mailgate が間隔を空けて再試行します。mailgate から外部への HTTPS 接続を確認してください。',
    'diagnosis.api_daily_limit':
      'このメールボックスはプロバイダーの 1 日の送信上限に達しました。上限がリセットされるまでメールは待機します。',
    'diagnosis.api_throttled':
      'プロバイダーからこのメールボックスの送信を減らすよう求められました。指定された時刻までメールは待機します。頻繁に起きる場合は、1 つのメールボックスで送れる量を超えています。',
    'diagnosis.api_message_too_large':
      'メッセージが大きすぎるためプロバイダーに拒否されました。添付ファイルを小さくしてください。再試行はされません。',
    'diagnosis.api_token_rejected':
      'トークンを更新してもプロバイダーがアクセストークンを拒否しました。認可に送信の権限がないか、取り消されています。「再認可」を押してください。',
    'diagnosis.api_permission_missing':
      'アプリまたはメールボックスに送信の権限がありません (Microsoft: Mail.Send、Google: gmail.send と Gmail API の有効化)。プロバイダー側で修正してから、「再開」を押してください。',
    'diagnosis.api_mailbox_not_found':
      'プロバイダーがこのメールボックスを認識していません。ユーザー名 (メールボックスのアドレス) を確認してください。Microsoft Graph には Exchange Online のメールボックスが必要です。',
    'diagnosis.api_unavailable': 'プロバイダーのメール API 側でエラーが発生しました。mailgate が再試行します。',
    'diagnosis.api_rejected':
      'プロバイダーがメッセージを拒否しました。メッセージを確認してください。再試行はされません。',
    'diagnosis.server_deleted': 'SMTP サーバーが存在しません。別のサーバーからメッセージを再送してください。',
  },
});
