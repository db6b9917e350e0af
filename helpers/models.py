"""Moved: loading to helpers.loading, the architecture facts to helpers.arch. Re-exported for one release."""
import warnings

from .arch import (MLP_SITES, SITES, block_module_name, check_layer, check_lengths, is_causal,  # noqa: F401
                   max_tokens, mlp_module_name, model_label, n_layers, n_neurons)
from .loading import (BASE_PACKAGE, BASE_VERSION, DEFAULT_MODEL, DELTA_DIR, DELTA_FILE, ENV_VAR,  # noqa: F401
                      STANDIN, ModelUnavailable, cache_root, hub_reachable, load_mlm, offline_setting,
                      standin_base, standin_dir)

warnings.warn("helpers.models moved to helpers.loading (load_mlm, the stand-in) and helpers.arch (layers, "
              "MLP sites)", DeprecationWarning, stacklevel=2)
