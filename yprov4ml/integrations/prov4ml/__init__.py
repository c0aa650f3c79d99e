"""``import prov4ml``: the name of upstream yProv4ML's earlier releases, forwarded to :mod:`yprov4ml`.

Installed as the top-level package ``prov4ml`` (pyproject's ``package-dir``). Scripts written as
``import prov4ml; prov4ml.start_run(...)`` run unchanged: the module is :mod:`yprov4ml` itself
(``prov4ml.Context is yprov4ml.Context``).
"""

import sys
import warnings

import yprov4ml

warnings.warn("the 'prov4ml' import name is deprecated: write 'import yprov4ml as prov4ml'",
              DeprecationWarning, stacklevel=2)
if __name__ == "prov4ml":
    sys.modules[__name__] = yprov4ml
