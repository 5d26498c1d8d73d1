import { describe, expect, it } from 'vitest';
import { LANGUAGES } from '../../src/i18n/i18n.js';
import { queue } from '../../src/i18n/messages/queue.js';

// The queue pages build some keys at run time (a status, a held reason, a recipient's result): each has a text.
describe('queue catalog', () => {
  it('names every message status, held reason and recipient result in every language', () => {
    const keys = [
      ...['queued', 'sending', 'sent', 'deferred', 'held', 'failed'].map((s) => `queue.status.${s}`),
      ...['sending_disabled', 'server_paused'].map((s) => `queue.held.${s}`),
      ...['pending', 'accepted', 'rejected'].map((s) => `queue.recipient.${s}`),
    ];
    for (const lang of LANGUAGES)
      for (const key of keys) expect((queue[lang] as Record<string, string>)[key], `${lang} ${key}`).toBeTruthy();
  });
});
