import { defineMessages } from '../i18n.js';

/** Reconnect links: the panel on the server page, the page a link opens, the email that carries a link. */
export const reconnect = defineMessages({
  en: {
    'reconnect.panel.title': 'Reconnect link',
    'reconnect.panel.intro':
      'A link with which the owner of the mailbox, who needs no mailgate account, authorizes this server again. It works once, for 7 days, and can be revoked.',
    'reconnect.panel.active': 'Active links',
    'reconnect.panel.none': 'No active reconnect link.',
    'reconnect.panel.created': 'Created',
    'reconnect.panel.expires': 'Expires',
    'reconnect.panel.by': 'By',
    'reconnect.panel.revoke': 'Revoke',
    'reconnect.panel.create': 'Create reconnect link',
    'reconnect.panel.emailVia': 'Email the link through',
    'reconnect.panel.dontEmail': 'Do not email it (copy the link yourself)',
    'reconnect.panel.emailTo': 'Send it to',
    'reconnect.panel.emailToHint':
      'The mailbox can still receive mail; only sending through this server is broken, so the link goes out through another server.',
    'reconnect.panel.noHealthy':
      'No other healthy server can send the link by email: copy it from the next page and send it yourself.',
    'reconnect.created.title': 'Reconnect link created',
    'reconnect.created.once': 'Copy the link now: it is shown only once.',
    'reconnect.created.validUntil': 'Valid until {expiresAt}, for one use.',
    'reconnect.created.emailed': 'The link was queued for {to} through "{server}".',
    'reconnect.created.back': 'Back to the server',
    'reconnect.revoke.title': 'Revoke reconnect link',
    'reconnect.revoke.question': 'Revoke this reconnect link for "{server}"?',
    'reconnect.revoke.consequence': 'Whoever has the link can no longer use it.',
    'reconnect.revoked': 'The reconnect link was revoked.',
    'reconnect.email.subject': 'Reconnect your mailbox to {server}',
    'reconnect.email.body':
      'mailgate can no longer send mail as {mailbox} through "{server}": the authorization at {provider} has expired or was revoked, and mail is waiting.\n\nOpen this link, press Authorize and sign in with {mailbox}:\n\n{url}\n\nThe link works once and expires on {expiresAt}. If you did not expect this message, ignore it.',
    'reconnect.page.title': 'Reconnect a mailbox',
    'reconnect.page.asks':
      'mailgate, the mail service of your organisation, asks to send mail as {mailbox} through the server "{server}".',
    'reconnect.page.asksAny':
      'mailgate, the mail service of your organisation, asks to send mail through the server "{server}".',
    'reconnect.page.why':
      'The authorization it had at {provider} expired or was revoked, so mail from this server is waiting. Press Authorize and sign in with the mailbox to let it go out again.',
    'reconnect.page.onlyThis': 'Sign in with {mailbox}: another mailbox is refused.',
    'reconnect.page.expires': 'This link expires on {expiresAt} and works once.',
    'reconnect.page.authorize': 'Authorize',
    'reconnect.page.continue': 'Continue to sign in',
    'reconnect.page.redirecting': 'Taking you to {origin} to sign in and consent.',
    'reconnect.done.title': 'Mailbox connected',
    'reconnect.done.message':
      '{mailbox} is now connected: mail from "{server}" goes out again. You can close this page.',
    'reconnect.refused.title': 'This link cannot be used',
    'reconnect.refused.tampered': 'This link is not valid: it was changed or cut short. Ask for a new link.',
    'reconnect.refused.unknown': 'This link is unknown. Ask for a new link.',
    'reconnect.refused.used':
      'This link was already used; it works only once. Ask for a new link if the mailbox still needs reconnecting.',
    'reconnect.refused.revoked': 'This link was revoked by an administrator. Ask for a new link.',
    'reconnect.refused.expired': 'This link has expired (links are valid for 7 days). Ask for a new link.',
    'reconnect.refused.not_oauth': 'The server of this link no longer uses OAuth 2.0; nothing to reconnect.',
    'reconnect.refused.binding':
      'This sign-in was started in another browser (or its cookie expired). Open the link again and press Authorize in this browser.',
    'reconnect.refused.transaction':
      'This sign-in is unknown, was already completed or took longer than 10 minutes. Open the link again and press Authorize.',
    'reconnect.refused.wrong_mailbox':
      'You signed in with another mailbox. This server sends as {expected}: nothing was changed. Open the link again and sign in with {expected}.',
    'reconnect.refused.denied':
      'Access was denied at the provider, so nothing was changed. The link can still be used.',
    'reconnect.refused.failed':
      'The provider did not complete the authorization ({code}); nothing was changed. Open the link again to retry.',
  },
  ja: {
    'reconnect.panel.title': '再接続リンク',
    'reconnect.panel.intro':
      'メールボックスの所有者が mailgate のアカウントなしでこのサーバーを再承認するためのリンクです。1 回だけ、7 日間有効で、取り消すことができます。',
    'reconnect.panel.active': '有効なリンク',
    'reconnect.panel.none': '有効な再接続リンクはありません。',
    'reconnect.panel.created': '作成日時',
    'reconnect.panel.expires': '有効期限',
    'reconnect.panel.by': '作成者',
    'reconnect.panel.revoke': '取り消し',
    'reconnect.panel.create': '再接続リンクを作成',
    'reconnect.panel.emailVia': 'リンクをメールで送信するサーバー',
    'reconnect.panel.dontEmail': 'メールで送信しない (リンクを自分でコピーする)',
    'reconnect.panel.emailTo': '送信先',
    'reconnect.panel.emailToHint':
      'メールボックスは受信はできます。このサーバーからの送信だけが止まっているため、リンクは別のサーバーから送信されます。',
    'reconnect.panel.noHealthy':
      'リンクをメールで送信できる正常な別のサーバーがありません。次のページでリンクをコピーし、ご自身で送ってください。',
    'reconnect.created.title': '再接続リンクを作成しました',
    'reconnect.created.once': 'リンクは一度しか表示されません。今すぐコピーしてください。',
    'reconnect.created.validUntil': '{expiresAt} まで、1 回だけ有効です。',
    'reconnect.created.emailed': 'リンクを「{server}」経由で {to} 宛てにキューに登録しました。',
    'reconnect.created.back': 'サーバーに戻る',
    'reconnect.revoke.title': '再接続リンクの取り消し',
    'reconnect.revoke.question': '「{server}」の再接続リンクを取り消しますか？',
    'reconnect.revoke.consequence': 'リンクを持っている人はそれを使えなくなります。',
    'reconnect.revoked': '再接続リンクを取り消しました。',
    'reconnect.email.subject': '{server} へのメールボックスの再接続',
    'reconnect.email.body':
      'mailgate は「{server}」から {mailbox} としてメールを送信できなくなりました。{provider} での承認が期限切れになったか取り消されたため、メールが送信待ちになっています。\n\n次のリンクを開き、「承認」を押して {mailbox} でサインインしてください:\n\n{url}\n\nこのリンクは 1 回だけ使え、{expiresAt} に期限が切れます。心当たりがない場合は、このメールを無視してください。',
    'reconnect.page.title': 'メールボックスの再接続',
    'reconnect.page.asks':
      '組織のメールサービス mailgate が、サーバー「{server}」から {mailbox} としてメールを送信する許可を求めています。',
    'reconnect.page.asksAny':
      '組織のメールサービス mailgate が、サーバー「{server}」からメールを送信する許可を求めています。',
    'reconnect.page.why':
      '{provider} での承認が期限切れになったか取り消されたため、このサーバーのメールが送信待ちになっています。「承認」を押してメールボックスでサインインすると、送信が再開されます。',
    'reconnect.page.onlyThis': '{mailbox} でサインインしてください。別のメールボックスは受け付けられません。',
    'reconnect.page.expires': 'このリンクは {expiresAt} に期限が切れ、1 回だけ使えます。',
    'reconnect.page.authorize': '承認',
    'reconnect.page.continue': 'サインインに進む',
    'reconnect.page.redirecting': 'サインインと同意のため {origin} に移動します。',
    'reconnect.done.title': 'メールボックスを接続しました',
    'reconnect.done.message':
      '{mailbox} を接続しました。「{server}」からのメール送信が再開されます。このページは閉じてかまいません。',
    'reconnect.refused.title': 'このリンクは使用できません',
    'reconnect.refused.tampered':
      'このリンクは無効です (変更されたか、途中で切れています)。新しいリンクを依頼してください。',
    'reconnect.refused.unknown': 'このリンクは見つかりません。新しいリンクを依頼してください。',
    'reconnect.refused.used':
      'このリンクは使用済みです (1 回だけ使えます)。まだ再接続が必要な場合は、新しいリンクを依頼してください。',
    'reconnect.refused.revoked': 'このリンクは管理者によって取り消されました。新しいリンクを依頼してください。',
    'reconnect.refused.expired': 'このリンクは期限切れです (有効期間は 7 日間です)。新しいリンクを依頼してください。',
    'reconnect.refused.not_oauth':
      'このリンクのサーバーは OAuth 2.0 を使用しなくなりました。再接続の必要はありません。',
    'reconnect.refused.binding':
      'このサインインは別のブラウザーで開始されたか、Cookie の期限が切れています。このブラウザーでリンクを開き直し、「承認」を押してください。',
    'reconnect.refused.transaction':
      'このサインインは不明か、完了済みか、10 分以上かかりました。リンクを開き直して「承認」を押してください。',
    'reconnect.refused.wrong_mailbox':
      '別のメールボックスでサインインしました。このサーバーは {expected} として送信します。何も変更されていません。リンクを開き直し、{expected} でサインインしてください。',
    'reconnect.refused.denied':
      'プロバイダーでアクセスが拒否されたため、何も変更されていません。リンクは引き続き使用できます。',
    'reconnect.refused.failed':
      'プロバイダーが承認を完了しませんでした ({code})。何も変更されていません。リンクを開き直して再試行してください。',
  },
});
