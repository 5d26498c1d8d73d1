import { defineMessages } from '../i18n.js';

/** The SMTP submission front: how its messages show on the queue page. (SMTP replies themselves stay English.) */
export const submission = defineMessages({
  en: {
    'submission.sourceSmtp': 'via SMTP',
    'submission.sourceApi': 'via API',
    'submission.size': '{bytes} bytes',
  },
  ja: {
    'submission.sourceSmtp': 'SMTP 経由',
    'submission.sourceApi': 'API 経由',
    'submission.size': '{bytes} バイト',
  },
});
