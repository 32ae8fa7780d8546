// Finds or builds the external binaries the tests and `petrel dev` use, once, up front.
import { findNatsServer } from '@petrel/localenv';

const binary = await findNatsServer({ log: (line) => process.stderr.write(`petrel: ${line}\n`) });
process.stderr.write(`petrel: nats-server: ${binary}\n`);
