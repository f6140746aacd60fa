/** Handlers of /api/v1/schedules; the logic is in src/schedules/store.ts. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { createSchedule, deleteSchedule, getSchedule, listSchedules, scheduleRevisions, scheduleTicks, updateSchedule } from "../../schedules/store.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"

export const SchedulesLive = HttpApiBuilder.group(CairnApi, "schedules", (h) =>
  h.handle("create", ({ payload }) => toApi(createSchedule(payload)))
    .handle("list", () => toApi(listSchedules()))
    .handle("get", ({ path }) => toApi(getSchedule(path.name)))
    .handle("revisions", ({ path }) => toApi(scheduleRevisions(path.name)))
    .handle("update", ({ path, payload, headers }) => toApi(updateSchedule(path.name, payload, headers["if-match"])))
    .handle("delete", ({ path }) => toApi(deleteSchedule(path.name)).pipe(Effect.asVoid))
    .handle("graphs", ({ path, urlParams }) => toApi(scheduleTicks(path.name, urlParams))))
