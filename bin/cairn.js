#!/usr/bin/env node
// The `cairn` command: runs src/cli/main.ts through tsx's loader, in this process (no child
// process: signals, the TTY and the exit code are the command's own).
import { register } from "tsx/esm/api"

register()
await import("../src/cli/main.ts")
