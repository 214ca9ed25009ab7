"""Editable installs map the package onto the source tree instead of copying it.

The wheel copies compress/, analysis/ and task_yamls/ into the package (force-include). An
editable install must not copy them (edits would not show), so it installs only the start-up
hook; lm_eval_acbench/__init__.py finds the two sub-packages in the checkout instead.
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableHookOnly(BuildHookInterface):
    def initialize(self, version, build_data):
        if version == "editable":
            build_data["force_include_editable"] = {
                "lm_eval_acbench_hook.pth": "lm_eval_acbench_hook.pth"
            }
