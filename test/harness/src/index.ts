export { issueCertificate, type TestCertificate } from './certificates.ts';
export { removeDirLater, tempDir, trackProcessGroup, untrackProcessGroup } from './cleanup.ts';
export {
  ClientError,
  ClientErrorCode,
  type CurlResult,
  type CurlSmtpOptions,
  curlSmtp,
  type NodemailerResult,
  type NodemailerSendOptions,
  nodemailerSend,
  type ProcessResult,
  type PythonSmtplibOptions,
  type PythonSmtplibResult,
  pipelinedEnvelope,
  pythonSmtplib,
  repliesOf,
  runClient,
  SMTPLIB_CLIENT_SCRIPT,
  type SmtpReply,
  type SwaksResult,
  swaks,
  type TranscriptLine,
} from './clients.ts';
export {
  DKIM_VERIFY_SCRIPT,
  type DkimpyResult,
  type DkimpyVerification,
  findDkimpyPython,
  verifyWithDkimpy,
} from './dkim-verify.ts';
export {
  type DnsQuery,
  type DnsRecord,
  type DnsServer,
  type DnsServerOptions,
  findDnsmasq,
  splitTxt,
  startDnsServer,
} from './dns-server.ts';
export {
  ENVTEST_BINARIES,
  ENVTEST_ETCD_VERSION,
  ENVTEST_KUBERNETES_VERSION,
  type EnvtestAssets,
  findEnvtestAssets,
} from './envtest.ts';
export { forkIngress, type IngressProcess, type IngressProcessOptions } from './ingress.ts';
export {
  type KubeControlPlane,
  type KubeControlPlaneOptions,
  type KubectlResult,
  type KubeUser,
  startKubeControlPlane,
} from './kube.ts';
export {
  type PostfixDelivery,
  PostfixError,
  PostfixErrorCode,
  type PostfixInstance,
  type PostfixOptions,
  type PostfixSendOptions,
  type PostfixTlsMode,
  startPostfix,
} from './postfix.ts';
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
