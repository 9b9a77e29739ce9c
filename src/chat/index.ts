/** Chat: the chat template (conversations → ids + loss mask) and conversation/preference JSONL. */
export {
  CHAT_SPECIAL_TOKENS,
  CHAT_ROLES,
  ChatTemplate,
  conversationProblem,
  validateMessages,
  type ChatSpecialToken,
  type ChatRole,
  type ChatMessage,
  type Conversation,
  type ConversationEnd,
  type RenderedChat,
  type ChatSpecialIds,
} from './template.js';
export {
  parseConversationsJsonl,
  parsePreferencesJsonl,
  readConversations,
  readPreferences,
  type PreferencePair,
} from './jsonl.js';
export * from './tasks.js';
