/**
 * The exit code of a command stopped by SIGINT/SIGTERM: 130, as shells report Ctrl-C, for a client
 * command cut short; `serve` and `worker` set 0, since a signal is how they are meant to end.
 */
let onSignal = 130

export const exitOnSignal = (code: number) => {
  onSignal = code
}

export const signalExitCode = () => onSignal
