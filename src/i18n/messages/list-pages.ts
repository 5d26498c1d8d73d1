import { defineMessages } from '../i18n.js';

/**
 * Long lists on forms: the API keys page's server field offers its choices once per page, and a server's form takes
 * an integration's id when there are more integrations than it lists.
 */
export const listPages = defineMessages({
  en: {
    'listPages.apiKeys.serverHint':
      'The id of a server (the list offers the first ones); leave it empty for any server.',
    'listPages.integrations.idHint':
      'The id of an OAuth 2.0 integration (the list offers the first 200; every id is on the integrations page).',
  },
  ja: {
    'listPages.integrations.idHint':
      'OAuth 2.0 連携の ID を入力します (最初の 200 件が候補に表示されます。すべての ID は連携の一覧ページにあります)。',
    'listPages.apiKeys.serverHint':
      'サーバーの ID を入力します (最初のいくつかのサーバーが候補に表示されます)。空欄ならどのサーバーからでも送信できます。',
  },
});
