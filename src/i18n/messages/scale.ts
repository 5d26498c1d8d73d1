import { defineMessages } from '../i18n.js';

/** Lists a page at a time (the servers page's search and paging) and a server's sending rate. */
export const scale = defineMessages({
  en: {
    'scale.search.label': 'Search servers',
    'scale.search.hint': 'Part of a name, description, host, address, user name or id.',
    'scale.search.submit': 'Search',
    'scale.search.clear': 'Show all',
    'scale.search.none': 'No server matches "{q}" here.',
    'scale.pages.next': 'Next page',
    'scale.pages.first': 'First page',
    'scale.pages.partial': 'The search looked at 5,000 servers; the next page goes on from there.',
    'scale.field.rateLimitPerMinute': 'Sending rate (messages per minute)',
    'scale.hint.rateLimitPerMinute':
      'Blank: no limit. Held across all instances, one message every 60/n seconds. Microsoft 365 allows 30 per minute per mailbox.',
  },
  ja: {
    'scale.search.label': 'サーバーを検索',
    'scale.search.hint': '名前、説明、ホスト名、アドレス、ユーザー名、ID の一部を入力します。',
    'scale.search.submit': '検索',
    'scale.search.clear': 'すべて表示',
    'scale.search.none': 'このページには「{q}」に一致するサーバーはありません。',
    'scale.pages.next': '次のページ',
    'scale.pages.first': '最初のページ',
    'scale.pages.partial': '検索は 5,000 台のサーバーを確認しました。次のページでその続きから検索します。',
    'scale.field.rateLimitPerMinute': '送信レート (1 分あたりのメッセージ数)',
    'scale.hint.rateLimitPerMinute':
      '空白の場合は制限なし。すべてのインスタンスを通じて、60/n 秒ごとに 1 通を送信します。Microsoft 365 ではメールボックスごとに 1 分あたり 30 通まで送信できます。',
  },
});
