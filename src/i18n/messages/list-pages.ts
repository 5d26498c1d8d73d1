import { defineMessages } from '../i18n.js';

/** Lists shown a page at a time: the API keys page's server field, which offers its choices once per page. */
export const listPages = defineMessages({
  en: {
    'listPages.apiKeys.serverHint':
      'The id of a server (the list offers the first ones); leave it empty for any server.',
  },
  ja: {
    'listPages.apiKeys.serverHint':
      'サーバーの ID を入力します (最初のいくつかのサーバーが候補に表示されます)。空欄ならどのサーバーからでも送信できます。',
  },
});
