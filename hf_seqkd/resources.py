"""Folders of data that ship inside the package: the card templates and the bundled corpus.

In the repository they live at the top level (`hub_cards/`, `data/bible_es_en/`); setup.cfg maps them into the
package as `hf_seqkd.hub_cards` and `hf_seqkd.bible_es_en`, so an installed wheel carries them and works from any
folder. A checkout used without installing (its root on `sys.path`) reads them where they are.
"""

import importlib.util
from pathlib import Path

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def shipped_folder(package: str, checkout_path: str) -> Path:
    """
    The folder of sub-package `hf_seqkd.<package>` as installed (a wheel, or an editable install), else the
    repository's `checkout_path` next to this package's source.
    """
    spec = importlib.util.find_spec(f"hf_seqkd.{package}")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            return Path(location)
    folder = _CHECKOUT_ROOT / checkout_path
    if not folder.is_dir():
        raise FileNotFoundError(
            f"hf_seqkd.{package} is not installed and {folder} does not exist: reinstall hf_seqkd "
            "(pip install hf_seqkd, or pip install -e . in a clone)."
        )
    return folder
