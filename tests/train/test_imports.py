"""backprop.train loads its optional dependencies lazily."""

import subprocess
import sys

HEAVY = ("safetensors", "tqdm", "matplotlib")


def _run(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_backprop_does_not_import_the_train_package_or_its_dependencies():
    code = ("import sys, backprop; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
            "or m.startswith('backprop.train')))")
    assert _run(code) == "[]"


def test_import_backprop_train_defers_safetensors_tqdm_and_matplotlib():
    code = ("import sys, backprop.train; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    assert _run(code) == "[]"


def test_training_without_checkpoints_or_a_bar_imports_none_of_them():
    code = (
        "import sys, backprop as bp\n"
        "from backprop.train import fit\n"
        "from backprop.data.datasets import xor\n"
        "m = bp.nn.Linear(2, 2)\n"
        "fit(m, bp.nn.CrossEntropyLoss(), bp.optim.SGD(m.parameters(), lr=0.1), xor(), "
        "epochs=2)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    assert _run(code) == "[]"


def test_saving_a_checkpoint_imports_safetensors(tmp_path):
    code = ("import sys, numpy as np\n"
            "from backprop.train import save_checkpoint\n"
            f"save_checkpoint({str(tmp_path / 'c.safetensors')!r}, {{'a': np.zeros(2)}})\n"
            "print('safetensors' in sys.modules)\n")
    assert _run(code) == "True"
