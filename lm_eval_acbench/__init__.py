"""ACBench as an lm-evaluation-harness extension.

Importing this package is cheap on purpose (it runs at every interpreter start through the
start-up hook): no torch, no transformers, no lm-eval here.
"""

import os as _os

__version__ = "0.1.0"

# compress/ and analysis/ sit at the repository root (the project's layout) and the wheel
# installs them inside this package. In a source checkout (editable install) they are found as
# lm_eval_acbench.compress / lm_eval_acbench.analysis by adding the checkout root to this
# package's search path; nothing is added to sys.path, so no generic top-level name appears.
_here = _os.path.dirname(_os.path.abspath(__file__))
_checkout = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "compress")) and _os.path.isfile(
    _os.path.join(_checkout, "compress", "__init__.py")
):
    __path__.append(_checkout)  # noqa: F821 - __path__ is defined for packages
