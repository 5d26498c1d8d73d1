import { defineMessages } from '../i18n.js';

/** Mail transports (SMTP, Microsoft Graph, Gmail API): the protocol choices and the Switch to Microsoft Graph panel. */
export const transports = defineMessages({
  en: {
    'transports.protocol.graph': 'Microsoft Graph (sendMail over HTTPS)',
    'transports.protocol.gmailApi': 'Gmail API (messages.send over HTTPS)',
    'transports.sendAs.label': 'Also sends as',
    'transports.sendAs.hint':
      'Further addresses this server may send as (shared mailboxes, send-as rights), one per line. The mailbox needs the "Send As" right on each.',
    'transports.apiHint':
      'Microsoft Graph and the Gmail API need OAuth 2.0 and send as the mailbox named in User name; host, port and TLS are not used.',
    'transports.switch.title': 'Switch to Microsoft Graph',
    'transports.switch.why':
      'Microsoft 365 refuses SMTP for this mailbox ({code}): SMTP AUTH is switched off for the tenant or the mailbox. Microsoft Graph sends the same mail over HTTPS.',
    'transports.switch.what':
      'The server keeps its id, its settings and its queued mail; its protocol becomes Microsoft Graph and you are taken to Microsoft to authorize it with the Mail.Send permission. Held mail is sent once the authorization completes.',
    'transports.switch.integration': 'Microsoft integration',
    'transports.switch.button': 'Switch to Microsoft Graph',
  },
  ja: {
    'transports.protocol.graph': 'Microsoft Graph (HTTPS で sendMail)',
    'transports.protocol.gmailApi': 'Gmail API (HTTPS で messages.send)',
    'transports.sendAs.label': '追加の送信元アドレス',
    'transports.sendAs.hint':
      'このサーバーが送信元として使えるほかのアドレス (共有メールボックス、代理送信の権限) を 1 行に 1 つずつ入力します。メールボックスにはそれぞれのアドレスの「メールボックスとして送信」権限が必要です。',
    'transports.apiHint':
      'Microsoft Graph と Gmail API は OAuth 2.0 が必要で、ユーザー名に指定したメールボックスとして送信します。ホスト名、ポート、TLS は使用しません。',
    'transports.switch.title': 'Microsoft Graph に切り替え',
    'transports.switch.why':
      'Microsoft 365 がこのメールボックスの SMTP 送信を拒否しています ({code})。テナントまたはメールボックスで SMTP AUTH が無効になっています。Microsoft Graph なら同じメールを HTTPS で送信できます。',
    'transports.switch.what':
      'サーバーの ID、設定、キュー内のメールはそのまま残ります。プロトコルが Microsoft Graph に変わり、Mail.Send 権限で承認するために Microsoft の画面に移動します。承認が完了すると保留中のメールが送信されます。',
    'transports.switch.integration': 'Microsoft 連携',
    'transports.switch.button': 'Microsoft Graph に切り替え',
  },
});
