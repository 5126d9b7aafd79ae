"""Black-box ownership verification: suspects, hypothesis tests, protocol, scenarios.

Modules: ``stats`` (t-test, label-only test, betting e-process), ``suspects`` (the Suspect
interface, torch / checkpoint adapters), ``http_client`` (remote API suspect), ``wire``
(the HTTP JSON format), ``server`` (``xmark serve-model``), ``protocol``
(``run_verification``), ``scenarios`` (Malicious / Ind-M / Ind-T table), ``plots``.
The HTTP and server modules are not imported here, so ``import xmark_core.verify`` does
not pull in httpx or FastAPI.
"""

from xmark_core.verify.protocol import (
    VerificationResult,
    VerifyConfig,
    compare_logs,
    heldout_pool,
    run_verification,
)
from xmark_core.verify.stats import (
    OwnershipTestResult,
    SequentialTest,
    label_only_test,
    paired_ttest,
    sequential_test,
)
from xmark_core.verify.suspects import (
    CheckpointSuspect,
    Suspect,
    TorchSuspect,
    labels_only,
    open_suspect,
)

__all__ = [
    "CheckpointSuspect", "SequentialTest", "Suspect", "OwnershipTestResult", "TorchSuspect",
    "VerificationResult", "VerifyConfig", "compare_logs", "heldout_pool", "label_only_test",
    "labels_only", "open_suspect", "paired_ttest", "run_verification", "sequential_test",
]
