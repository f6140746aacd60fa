/**
 * A command that only groups others (`cairn`, `cairn repo`): run without a subcommand, it shows
 * its help, which lists them, instead of doing nothing.
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import { Effect } from "effect"

type AnyCommand = Command.Command<any, any, any, any>

export const group = <const Subs extends readonly [AnyCommand, ...Array<AnyCommand>]>(
  name: string,
  description: string,
  subcommands: Subs
) => {
  // The handler needs the finished command (with its subcommands), whose help lists them.
  const finished: { command?: AnyCommand } = {}
  const command = Command.make(name, {}, () =>
    Effect.suspend(() => Effect.fail(ValidationError.helpRequested(finished.command!.descriptor)))
  ).pipe(Command.withDescription(description), Command.withSubcommands(subcommands))
  finished.command = command
  return command
}
