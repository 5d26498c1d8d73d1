import { adminCommands } from './admin-commands.js';
import { authorizeCommands } from './authorize.js';
import { keysCommands } from './keys.js';
import { redisClusterCommands } from './redis-cluster.js';
import { tokensCommands } from './tokens.js';
import type { CliCommand } from './types.js';
import { usersCommands } from './users.js';

/** Every CLI command. Add a group with one line: `...myCommands,` (see src/cli/types.ts). */
export const COMMANDS: readonly CliCommand[] = [
  ...keysCommands,
  ...adminCommands,
  ...usersCommands,
  ...tokensCommands,
  ...authorizeCommands,
  ...redisClusterCommands,
];
