# Wall time of each kubegrid phase in an ansible-playbook run, for the per-phase split that
# e2e/benches/apply_vs_ansible.rs prints beside kubegrid's own (its JSON report's `phases`).
# A task belongs to the phase its file is named after (tasks/os-prepare.yaml: os-prepare),
# fact gathering to "facts", everything else, handlers and checks included, to
# "container-runtime", as in kubegrid's playbook. With the linear strategy every host runs a
# task before the next one starts, so a phase lasts from its first task's start to the next
# phase's; "startup" is the time before the first task (parsing, inventory).
# Writes {"phase": seconds, ...} as JSON to $KUBEGRID_BENCH_PHASES when that is set.
import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: phase_times
    type: aggregate
    short_description: wall time per kubegrid phase
    description: Writes the wall time of each kubegrid phase to $KUBEGRID_BENCH_PHASES.
"""


def phase_of(task):
    if task.action in ("gather_facts", "ansible.builtin.gather_facts", "setup", "ansible.builtin.setup"):
        return "facts"
    path = (task.get_path() or "").rsplit(":", 1)[0]
    if os.path.basename(path) == "os-prepare.yaml":
        return "os-prepare"
    return "container-runtime"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "phase_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.current = "startup"
        self.since = time.monotonic()
        self.times = {}

    def _switch(self, phase):
        now = time.monotonic()
        self.times[self.current] = self.times.get(self.current, 0.0) + now - self.since
        self.current, self.since = phase, now

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._switch(phase_of(task))

    def v2_playbook_on_handler_task_start(self, task):
        self._switch("container-runtime")

    def v2_playbook_on_stats(self, stats):
        self._switch("done")
        out = os.environ.get("KUBEGRID_BENCH_PHASES")
        if out:
            with open(out, "w") as f:
                json.dump(self.times, f)
