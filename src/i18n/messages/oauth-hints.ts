import { defineMessages } from '../i18n.js';

/**
 * OAuth 2.0 diagnoses by code (src/oauth/diagnose.ts, Microsoft's AADSTS codes in src/oauth/providers/) and why
 * an authorization callback was refused (AuthorizationRefusal in src/tokens/authorize.ts). English pages show
 * the diagnosis's own text; these serve other languages. `oauthDiagnosis.other` stands for codes a provider
 * made up; `diagnosisWhere.unknown` stands in for host:port where a page does not know it.
 */
export const oauthHints = defineMessages({
  en: {
    'warning.needs_reauth': '{mailbox} needs re-authorization: press Re-authorize on the server page.',
    'warning.secret_expired': 'The client secret of "{name}" expired on {date}; rotate it now.',
    'warning.secret_expiring':
      'The client secret of "{name}" expires on {date} (in {days} days); rotate it before then.',
    'warning.integration_misconfigured': '"{name}": the provider rejected this integration\'s client credentials.',
    'warning.google_in_testing':
      '"{name}" is a Google app in Testing: its refresh tokens expire after 7 days. Publish the app\'s consent screen.',
    'oauthDiagnosis.invalid_grant':
      'The provider rejected the refresh token (revoked, expired or reused). Press Re-authorize to connect the mailbox again.',
    'oauthDiagnosis.invalid_client':
      'The provider rejected the client ID or secret. Check the client ID, and rotate the client secret if it expired or was regenerated.',
    'oauthDiagnosis.unauthorized_client':
      'The provider rejected the client ID or secret. Check the client ID, and rotate the client secret if it expired or was regenerated.',
    'oauthDiagnosis.egress_denied':
      'mailgate refused to connect to this endpoint: its address is on a network that admin-entered endpoints may not reach. Correct the issuer or endpoints, or have the operator list the host in MAILGATE_EGRESS_ALLOW.',
    'oauthDiagnosis.access_denied':
      'Access was denied at the provider (the user pressed Cancel or an administrator blocks the app). Press Authorize to try again.',
    'oauthDiagnosis.timeout':
      'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.',
    'oauthDiagnosis.network':
      'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.',
    'oauthDiagnosis.http_error':
      'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.',
    'oauthDiagnosis.temporarily_unavailable':
      'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.',
    'oauthDiagnosis.server_error':
      'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.',
    'oauthDiagnosis.invalid_scope':
      "The scopes were refused. Check the integration's scopes and the scopes enabled for the app at the provider.",
    'oauthDiagnosis.other': 'The provider refused the request: read its message.',
    'diagnosisWhere.unknown': 'the server',
    'oauthDiagnosis.AADSTS700082':
      'The refresh token expired after being unused for too long (AADSTS700082). Press Re-authorize; check that a worker instance is running.',
    'oauthDiagnosis.AADSTS50173':
      "The grant was revoked because the user's password changed or their sessions were revoked (AADSTS50173). Press Re-authorize and sign in again.",
    'oauthDiagnosis.AADSTS7000222':
      'The client secret has expired (AADSTS7000222). Create a new secret in the Entra admin center and rotate it here with "Rotate client secret".',
    'oauthDiagnosis.AADSTS7000215':
      "The client secret is wrong (AADSTS7000215): copy the secret's Value, not its Secret ID, and rotate it here.",
    'oauthDiagnosis.AADSTS54005':
      'The authorization code was already redeemed (AADSTS54005), usually by a reloaded callback page. Press Authorize again.',
    'oauthDiagnosis.AADSTS65001':
      'The user or an administrator has not consented to the app (AADSTS65001). Grant admin consent in the Entra admin center, then Authorize again.',
    'oauthDiagnosis.AADSTS90002':
      'The tenant was not found (AADSTS90002). Check the tenant ID or domain of the integration.',
    'oauthDiagnosis.AADSTS700016':
      'The application (client) ID was not found in this tenant (AADSTS700016). Check the client ID and tenant.',
    'oauthDiagnosis.AADSTS50020':
      "The account is not in the integration's tenant (AADSTS50020). Sign in with an account of that tenant or use the right tenant ID.",
    'oauthFailure.missing_state':
      'The provider sent no state: this page was not reached through Authorize. Start again from the SMTP server page.',
    'oauthFailure.unknown_state':
      'This authorization is unknown or was already used (a reloaded or replayed callback). Start again with Authorize on the SMTP server page.',
    'oauthFailure.expired': 'This authorization expired (more than 10 minutes passed). Press Authorize again.',
    'oauthFailure.foreign_session':
      'This authorization was started in another browser session. Press Authorize again from your own session.',
    'oauthFailure.access_denied': 'Access was denied at the provider, so nothing was changed.',
    'oauthFailure.provider_error': 'The provider reported an error ({error}).',
    'oauthFailure.wrong_issuer':
      "The response claims to come from another issuer than the integration's; it was refused.",
    'oauthFailure.no_email':
      'The account you signed in with has no email address in its ID token, so mailgate cannot tell which mailbox to send from. Sign in with a mail-enabled account.',
    'oauthFailure.email_unverified':
      'The provider says the email address of this account ({email}) is not verified, so mailgate will not send as it. Verify it, or sign in with another account, then press Authorize again.',
    'oauthFailure.wrong_mailbox':
      'You signed in as {mailbox}, but this server sends as {expected}. Nothing was changed: sign in with {expected}.',
    'oauthFailure.exchange_failed': 'The provider did not accept the authorization ({error}).',
  },
  ja: {
    'warning.needs_reauth': '{mailbox} の再認可が必要です。サーバーのページで「再認可」を押してください。',
    'warning.secret_expired':
      '"{name}" のクライアントシークレットは {date} に期限切れになりました。今すぐローテーションしてください。',
    'warning.secret_expiring':
      '"{name}" のクライアントシークレットは {date} に期限切れになります (あと {days} 日)。それまでにローテーションしてください。',
    'warning.integration_misconfigured': '"{name}": プロバイダーがこの連携のクライアント認証情報を拒否しました。',
    'warning.google_in_testing':
      '"{name}" は「テスト中」の Google アプリです。リフレッシュトークンは 7 日で失効します。アプリの同意画面を公開してください。',
    'oauthDiagnosis.invalid_grant':
      'プロバイダーがリフレッシュトークンを拒否しました (取り消し、期限切れ、または再利用)。「再認可」を押してメールボックスを接続し直してください。',
    'oauthDiagnosis.invalid_client':
      'プロバイダーがクライアント ID またはシークレットを拒否しました。クライアント ID を確認し、シークレットが期限切れか再生成された場合はローテーションしてください。',
    'oauthDiagnosis.unauthorized_client':
      'プロバイダーがクライアント ID またはシークレットを拒否しました。クライアント ID を確認し、シークレットが期限切れか再生成された場合はローテーションしてください。',
    'oauthDiagnosis.egress_denied':
      'このエンドポイントへの接続を mailgate が拒否しました。管理者が入力したエンドポイントから接続できないネットワーク上のアドレスです。発行者またはエンドポイントを修正するか、運用担当者にホストを MAILGATE_EGRESS_ALLOW に追加するよう依頼してください。',
    'oauthDiagnosis.access_denied':
      'プロバイダーでアクセスが拒否されました (ユーザーがキャンセルしたか、管理者がアプリをブロックしています)。「認可」を押してやり直してください。',
    'oauthDiagnosis.timeout':
      '現在プロバイダーが応答していません。mailgate が間隔を空けて再試行します。キュー内のメールは待機し、プロバイダーの復旧後に配信されます。',
    'oauthDiagnosis.network':
      '現在プロバイダーが応答していません。mailgate が間隔を空けて再試行します。キュー内のメールは待機し、プロバイダーの復旧後に配信されます。',
    'oauthDiagnosis.http_error':
      '現在プロバイダーが応答していません。mailgate が間隔を空けて再試行します。キュー内のメールは待機し、プロバイダーの復旧後に配信されます。',
    'oauthDiagnosis.temporarily_unavailable':
      '現在プロバイダーが応答していません。mailgate が間隔を空けて再試行します。キュー内のメールは待機し、プロバイダーの復旧後に配信されます。',
    'oauthDiagnosis.server_error':
      '現在プロバイダーが応答していません。mailgate が間隔を空けて再試行します。キュー内のメールは待機し、プロバイダーの復旧後に配信されます。',
    'oauthDiagnosis.invalid_scope':
      'スコープが拒否されました。連携のスコープと、プロバイダー側でアプリに許可されているスコープを確認してください。',
    'oauthDiagnosis.other': 'プロバイダーが要求を拒否しました。プロバイダーのメッセージを確認してください。',
    'diagnosisWhere.unknown': 'サーバー',
    'oauthDiagnosis.AADSTS700082':
      'リフレッシュトークンが長期間使われず期限切れになりました (AADSTS700082)。「再認可」を押してください。ワーカーのインスタンスが動作していることも確認してください。',
    'oauthDiagnosis.AADSTS50173':
      'ユーザーのパスワード変更またはセッションの取り消しにより、認可が取り消されました (AADSTS50173)。「再認可」を押して、もう一度サインインしてください。',
    'oauthDiagnosis.AADSTS7000222':
      'クライアントシークレットの有効期限が切れています (AADSTS7000222)。Entra 管理センターで新しいシークレットを作成し、ここで「クライアントシークレットをローテーション」してください。',
    'oauthDiagnosis.AADSTS7000215':
      'クライアントシークレットが正しくありません (AADSTS7000215)。シークレット ID ではなくシークレットの「値」をコピーし、ここでローテーションしてください。',
    'oauthDiagnosis.AADSTS54005':
      '認可コードはすでに使用されています (AADSTS54005)。多くはコールバックページの再読み込みが原因です。もう一度「認可」を押してください。',
    'oauthDiagnosis.AADSTS65001':
      'ユーザーまたは管理者がアプリに同意していません (AADSTS65001)。Entra 管理センターで管理者の同意を付与してから、もう一度認可してください。',
    'oauthDiagnosis.AADSTS90002':
      'テナントが見つかりません (AADSTS90002)。連携のテナント ID またはドメインを確認してください。',
    'oauthDiagnosis.AADSTS700016':
      'このテナントにアプリケーション (クライアント) ID が見つかりません (AADSTS700016)。クライアント ID とテナントを確認してください。',
    'oauthDiagnosis.AADSTS50020':
      'このアカウントは連携のテナントに属していません (AADSTS50020)。そのテナントのアカウントでサインインするか、正しいテナント ID を使用してください。',
    'oauthFailure.missing_state':
      'プロバイダーから state が送られませんでした。このページは「認可」から開かれていません。SMTP サーバーのページからやり直してください。',
    'oauthFailure.unknown_state':
      'この認可は不明か、すでに使用されています (コールバックの再読み込みまたは再送)。SMTP サーバーのページの「認可」からやり直してください。',
    'oauthFailure.expired': 'この認可は期限切れです (10 分以上経過しました)。もう一度「認可」を押してください。',
    'oauthFailure.foreign_session':
      'この認可は別のブラウザーセッションで開始されました。ご自身のセッションからもう一度「認可」を押してください。',
    'oauthFailure.access_denied': 'プロバイダーでアクセスが拒否されたため、何も変更されていません。',
    'oauthFailure.provider_error': 'プロバイダーがエラーを報告しました ({error})。',
    'oauthFailure.wrong_issuer': '応答が連携とは異なる発行者からのものとされているため、拒否しました。',
    'oauthFailure.no_email':
      'サインインしたアカウントの ID トークンにメールアドレスがないため、送信元のメールボックスを特定できません。メールが有効なアカウントでサインインしてください。',
    'oauthFailure.email_unverified':
      'プロバイダーによると、このアカウントのメールアドレス ({email}) は確認されていないため、mailgate はこのアドレスでは送信しません。アドレスを確認するか、別のアカウントでサインインしてから、もう一度「認可」を押してください。',
    'oauthFailure.wrong_mailbox':
      '{mailbox} としてサインインしましたが、このサーバーは {expected} として送信します。何も変更されていません。{expected} でサインインしてください。',
    'oauthFailure.exchange_failed': 'プロバイダーが認可を受け付けませんでした ({error})。',
  },
});
