/** The Nix library: running nix, version detection, JSON parsers per Nix version, nix.conf, log parsing. */
export {
  atLeast,
  compareVersions,
  formatVersion,
  isLix,
  nixFeatures,
  parseNixVersion,
  PATH_INFO_JSON_FORMAT,
  type NixFeatures,
  type NixVersion,
} from './version.js';
export { EXPERIMENTAL_FEATURES, NixCommand, nixBinOnPath, type NixCommandOptions } from './command.js';
export { hashString, parsePathInfo, type PathInfo } from './path-info.js';
export { outPaths, parseBuildOutputs, parsePrintOutPaths, type BuildOutput } from './build-outputs.js';
export {
  BEGIN_MARKER,
  END_MARKER,
  parseNixConf,
  renderNixConf,
  upsertManagedBlock,
  validateExtraConf,
  type NixConfEntry,
  type NixConfInclude,
  type NixConfValue,
  type NixSettings,
  type ParsedNixConf,
} from './conf.js';
export {
  ActivityType,
  parseLogLine,
  ResultType,
  stripAnsi,
  Verbosity,
  type LogField,
  type MsgEvent,
  type NixLogEvent,
  type OtherEvent,
  type ResultEvent,
  type StartEvent,
  type StopEvent,
  type TextEvent,
} from './log.js';
export {
  BuildLogTracker,
  type ActivityInfo,
  type BuildLogTrackerOptions,
  type DrvBuild,
  type Progress,
  type Substitution,
} from './log-tracker.js';
