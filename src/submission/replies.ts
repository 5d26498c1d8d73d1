/**
 * The SMTP answers of the submission front, each with its enhanced status code (RFC 3463) and a sentence an admin
 * reading an app's log can act on. The listener hides smtp-server's own ENHANCEDSTATUSCODES mapping, which knows
 * only the basic codes, and writes the enhanced ones itself.
 */

export class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'SmtpReply';
  }
}

export const MAX_RECIPIENTS_PER_MESSAGE = 1000;

export const replies = {
  badKey: () =>
    new SmtpReply(535, '5.7.8 Authentication failed: the password must be a mailgate API key with the send scope'),
  keyRevoked: () => new SmtpReply(535, '5.7.8 Authentication failed: this API key was revoked or has expired'),
  encryptionRequired: () =>
    new SmtpReply(538, '5.7.11 Encryption required: use STARTTLS (or the implicit TLS port) before AUTH'),
  slowDown: (seconds: number) =>
    new SmtpReply(454, `4.7.0 Too many failed logins from your address; try again in ${seconds} s`),
  senderNotAllowed: (address: string) =>
    new SmtpReply(550, `5.7.1 This API key may not send as ${address.slice(0, 200)} (its allowedFrom list)`),
  tooManyRecipients: () =>
    new SmtpReply(452, `4.5.3 Too many recipients: at most ${MAX_RECIPIENTS_PER_MESSAGE} per message`),
  badRecipient: (problem: string) => new SmtpReply(553, `5.1.3 Recipient address ${problem}`),
  queueFull: () => new SmtpReply(451, '4.3.1 The mail queue is full; try again later'),
  rateLimited: (text: string) => new SmtpReply(451, `4.7.1 ${text}`),
  tooBig: (max: number) => new SmtpReply(552, `5.3.4 Message too big: at most ${max} octets`),
  badMessage: (problem: string) => new SmtpReply(554, `5.6.0 Message refused: ${problem}`),
  noServer: () =>
    new SmtpReply(451, '4.3.0 No SMTP server is configured in mailgate for this key; an admin must add one'),
  temporary: () => new SmtpReply(451, '4.3.0 Temporary failure in mailgate; try again'),
};
