"""Long work in small steps: all at once from scripts, a step per timer tick in the UI.

A job is a generator yielding its finished fraction (or ``(fraction, what comes next)``), or
``Waiting(fraction, what)`` while it waits on something outside Blender (render/job_steps.py: the
tick ends early instead of spinning, and the UI stays usable). In the UI the operator goes modal: Blender stays responsive, the status bar shows progress and ESC
closes the generator, which is how every job here cancels cleanly.
"""
from __future__ import annotations

import time

from ..render.job_steps import Waiting
from ..render.pose_maps import JobError

# How long one timer tick may work before handing control back to Blender's UI.
TICK_BUDGET_S = 0.05
# How long a scripted run sleeps when the job waits on something outside Blender.
WAIT_S = 0.05


# Events a running job lets through to Blender: view navigation only. Everything else (undo,
# playback, scrubbing, another Render press) would fight the job's own frame changes.
_PASS_THROUGH = {
    "MOUSEMOVE", "INBETWEEN_MOUSEMOVE", "WHEELUPMOUSE", "WHEELDOWNMOUSE", "MIDDLEMOUSE",
    "TRACKPADPAN", "TRACKPADZOOM", "MOUSEROTATE", "NDOF_MOTION", "WINDOW_DEACTIVATE",
}
_running = set()  # the jobs running modally now (one at a time)


def job_running() -> bool:
    return bool(_running)


class SteppedOperator:
    """Mixin for operators that run a job generator; subclasses define ``finish``."""

    status_text = "PoseBridge: working"

    @classmethod
    def poll(cls, context):
        return not job_running()

    def run_steps(self, context, steps, interactive: bool):
        self._steps = steps
        if not interactive or context.window is None:
            try:
                for step in steps:
                    if isinstance(step, Waiting):
                        time.sleep(WAIT_S)
            except Exception as error:  # JobError, or a failure mid-job: report it
                self.report({"ERROR"}, self._message(error))
                return {"CANCELLED"}
            return self.finish(context, cancelled=False)
        window_manager = context.window_manager
        self._waiting = False
        self._stage = None
        self._timer = window_manager.event_timer_add(0.01, window=context.window)
        window_manager.progress_begin(0, 100)
        window_manager.modal_handler_add(self)
        _running.add(self.bl_idname)
        self._show_status(context, None)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._steps.close()
            self._end(context)
            return self.finish(context, cancelled=True)
        if event.type != "TIMER":
            if self._waiting or event.type in _PASS_THROUGH:
                return {"PASS_THROUGH"}
            return {"RUNNING_MODAL"}
        deadline = time.perf_counter() + TICK_BUDGET_S
        try:
            while time.perf_counter() < deadline:
                step = next(self._steps)
                self._waiting = isinstance(step, Waiting)
                fraction, stage = step if isinstance(step, tuple) else (step, None)
                context.window_manager.progress_update(int(fraction * 100))
                if stage and stage != self._stage:
                    self._stage = stage
                    self._show_status(context, stage)
                if self._waiting:  # nothing to do in Blender: the rest of the tick is the UI's
                    break
        except StopIteration:
            self._end(context)
            return self.finish(context, cancelled=False)
        except Exception as error:  # JobError or a failure mid-job: report it, keep what was done
            self._steps.close()
            self._end(context)
            self.report({"ERROR"}, self._message(error))
            return {"CANCELLED"}
        return {"RUNNING_MODAL"}

    def cancel(self, context):
        """Blender ends the operator (file loaded, window closed): stop the job cleanly now."""
        self._steps.close()
        self._end(context)

    def _message(self, error) -> str:
        return str(error) if isinstance(error, JobError) else f"{self.bl_label} failed: {error}"

    def _show_status(self, context, stage):
        if context.workspace is not None:
            detail = f": {stage}" if stage else ""
            context.workspace.status_text_set(f"{self.status_text}{detail} (ESC to cancel)")

    def _end(self, context):
        _running.discard(self.bl_idname)
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
