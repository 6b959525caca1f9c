/** `node --import=tsx test/helpers/run-cli.ts <args>`: the CLI from source, for specs that must run it as a process (kill tests). */
import { main } from '../../ts/cli.js';

process.exitCode = await main(process.argv.slice(2));
