import MimeNode from 'nodemailer/lib/mime-node';
import type { WireEnvelope } from './connection.js';

/**
 * The envelope as nodemailer puts it on the wire: every address normalized (the domain lower-cased, or punycoded
 * when the local part is ASCII; a local part quoted when it has to be) and repeated recipients dropped. The SMTP
 * front keeps addresses as the client wrote them, so the narrow client must send what nodemailer sent for them.
 * The common case is already in that form (an ASCII dot-atom at a lower-case host name, no repeats) and passes
 * through without nodemailer's address parser.
 */

const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const PLAIN_ADDRESS = new RegExp(`^${ATOM}(?:\\.${ATOM})*@${LABEL}(?:\\.${LABEL})+$`);

function isPlain(envelope: WireEnvelope): boolean {
  if (!PLAIN_ADDRESS.test(envelope.from)) return false;
  for (const to of envelope.to) if (!PLAIN_ADDRESS.test(to)) return false;
  return new Set(envelope.to).size === envelope.to.length;
}

export function normalizeEnvelope(envelope: WireEnvelope): WireEnvelope {
  if (isPlain(envelope)) return envelope;
  const normalized = new MimeNode().setEnvelope({ from: envelope.from, to: envelope.to }).getEnvelope();
  return {
    from: normalized.from || '',
    to: normalized.to,
    ...(envelope.use8BitMime ? { use8BitMime: true } : {}),
  };
}
