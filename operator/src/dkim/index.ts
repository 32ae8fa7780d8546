export { DkimError, DkimErrorCode } from './errors.ts';
export {
  DKIM_ALGORITHMS,
  DkimAlgorithm,
  dkimTxtValue,
  type GeneratedDkimKey,
  generateDkimKey,
  isDkimAlgorithm,
  keyFingerprint,
  RSA_KEY_BITS,
} from './keys.ts';
export {
  applyDkimPlan,
  type DkimGenerateSpec,
  type DkimKeyPlan,
  type DkimKeyRecord,
  DkimKeyState,
  type DkimPlanInput,
  dkimSelector,
  planDkimKeys,
} from './plan.ts';
