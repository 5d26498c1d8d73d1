import { domainToASCII } from 'node:url';

/**
 * The envelope's addresses as nodemailer puts them in MAIL FROM and RCPT TO: the domain lower-cased (an
 * internationalized one as its A-label, unless the local part already needs SMTPUTF8), each recipient once. The
 * results (accepted, rejected) then name the recipients as nodemailer's did.
 */

const NON_ASCII = /[\x80-\uFFFF]/;
/** A domain nodemailer's normalization leaves as it is (nearly every one): no call into the URL parser for it. */
const PLAIN_DOMAIN = /^[a-z0-9.-]+$/;

export function envelopeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (PLAIN_DOMAIN.test(domain)) return address;
  if (NON_ASCII.test(local) || domain.startsWith('[')) return `${local}@${domain.toLowerCase()}`;
  return `${local}@${domainToASCII(domain) || domain.toLowerCase()}`;
}

export function envelopeRecipients(addresses: readonly string[]): string[] {
  return [...new Set(addresses.map(envelopeAddress))];
}
