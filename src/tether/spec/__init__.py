"""The integration spec: pydantic models of the INT template (+ tether's sections), the loader,
the not-enforced registry and the JSON Schema export.

```python
from tether.spec import load
spec = load("specs/dataapi.yaml", env="development")
spec.base_url, spec.endpoints["get_data"].path
```
"""

from __future__ import annotations

from tether.spec._enforcement import INFORMATIONAL, NOT_ENFORCED, not_enforced
from tether.spec._errors import Problem, SpecLoadError
from tether.spec._explain import explain, explain_text
from tether.spec._loader import ENV_VAR, load
from tether.spec._model import Spec
from tether.spec._schema import json_schema
from tether.spec._types import SecretRef
from tether.spec._yaml import Location

__all__ = [
    "ENV_VAR",
    "INFORMATIONAL",
    "NOT_ENFORCED",
    "Location",
    "Problem",
    "SecretRef",
    "Spec",
    "SpecLoadError",
    "explain",
    "explain_text",
    "json_schema",
    "load",
    "not_enforced",
]
