// A local SMTP sink for trying `petrel dev` by hand (README walk-through): prints every message
// it receives. Usage: npm run -s sink -- [port]   (default 2526)
import { startSmtpSink } from '@petrel/test-harness';

const port = Number(process.argv[2] ?? 2526);
const sink = await startSmtpSink({
  port,
  hostname: 'sink.localhost',
  onMessage: (m) => {
    process.stdout.write(
      `--- message from <${m.mailFrom}> to ${m.rcptTo.map((r) => `<${r}>`).join(', ')} (${m.data.length} octets)\n`,
    );
    process.stdout.write(m.data.toString('utf8'));
  },
});
process.stdout.write(`sink: listening on smtp://${sink.address}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void sink.close().then(() => process.exit(0));
  });
}
