import { copyToCluster } from '../store/redis-copy.js';
import { StoreUnavailableError } from '../store/store.js';
import { cliConfig } from './context.js';
import { CliError, EXIT, type CliCommand } from './types.js';

/** The move of a fleet from one Redis to a Redis Cluster (README, "Moving a fleet to a Redis Cluster"). */

const copyCommand: CliCommand = {
  name: 'redis copy-to-cluster',
  summary:
    "copy the deployment's keys from one Redis (--from) to the cluster REDIS_URL names; run with every instance stopped",
  usage:
    'mailgate redis copy-to-cluster --from redis://old-host:6379\n' +
    '  The target is the environment of the new fleet: REDIS_URL (any cluster node), MAILGATE_REDIS_MODE=cluster,\n' +
    '  MAILGATE_REDIS_PREFIX (the same on both). Keys keep their values and time to live; running it again replaces them.',
  async run(args, io) {
    const from = args[0] === '--from' ? args[1] : undefined;
    if (!from || args.length !== 2 || !/^rediss?:\/\//.test(from))
      throw new CliError(`usage: ${this.usage}`, EXIT.unusable);
    const config = cliConfig(io);
    if (!config.REDIS_URL || config.MAILGATE_REDIS_MODE !== 'cluster')
      throw new CliError(
        'Set REDIS_URL to a node of the new cluster and MAILGATE_REDIS_MODE=cluster (the target of the copy).',
        EXIT.unusable,
      );
    try {
      const { copied } = await copyToCluster({
        fromUrl: from,
        toUrl: config.REDIS_URL,
        prefix: config.MAILGATE_REDIS_PREFIX,
        onProgress: (n) => io.stderr.write(`copied ${n} keys\n`),
      });
      io.stdout.write(`Copied ${copied} keys under ${config.MAILGATE_REDIS_PREFIX} to the cluster.\n`);
      return EXIT.ok;
    } catch (err) {
      if (err instanceof StoreUnavailableError)
        throw new CliError(`${err.message}\nNothing more was copied.`, EXIT.unusable);
      throw err;
    }
  },
};

export const redisClusterCommands: readonly CliCommand[] = [copyCommand];
