"""python app -i INPUT -o OUTPUT -m MODELS (or HOLOSCAN_INPUT_PATH / OUTPUT_PATH / MODEL_PATH)."""
import os
import sys

# `python app` puts this folder first on sys.path, where `app` and `operators` would resolve to the
# wrong modules. Put the project root there instead (the repository, or /opt/holoscan in a MAP),
# plus the MAP's library folder, where `monai-deploy package --add` places livervessels/operators.
_here = os.path.dirname(os.path.abspath(__file__))
_roots = [os.path.dirname(_here), os.environ.get("HOLOSCAN_LIB_DIR", "/opt/holoscan/lib")]
sys.path[:] = [r for r in _roots if os.path.isdir(r)] + [p for p in sys.path if os.path.abspath(p or ".") != _here]

from app.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
