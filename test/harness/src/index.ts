export { removeDirLater, tempDir, trackProcessGroup, untrackProcessGroup } from './cleanup.ts';
export { type PetrelDev, type PetrelDevOptions, startPetrelDev } from './relay.ts';
export {
  type After,
  type NatsCluster,
  startNats,
  startNatsCluster,
  startPostgres,
  type TestPostgres,
} from './servers.ts';
export {
  behaviourByLocalPart,
  type ReceivedMessage,
  type SinkBehaviour,
  type SinkOptions,
  type SmtpSink,
  startSmtpSink,
} from './smtp-sink.ts';
export { type WaitOptions, waitFor } from './wait.ts';
