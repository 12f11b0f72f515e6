export { buildProgram, main, VERSION } from './cli';
export { CliError, EXIT } from './errors';
