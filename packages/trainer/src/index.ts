export {
  BACKEND_NAMES,
  type BackendAttempt,
  type BackendName,
  type BackendRequest,
  type BackendSelection,
  backendPackages,
  type BackendPackage,
  cudaAvailable,
  describeSelection,
  selectBackend,
} from './backend.js';
