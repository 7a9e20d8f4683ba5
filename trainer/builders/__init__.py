"""Tools that write a data set to disk once, before training (the trainer reads them with :mod:`trainer.data`).

* :mod:`trainer.builders.package_portraits` - real photos + subject masks from images that ship
  inside installed packages (scikit-image's ``skimage.data``, the MIT-licensed ComfyUI template
  media bundles): ``python -m trainer.builders.package_portraits OUT``. Images are never
  committed: the builder re-creates the set from the installed packages, deterministically.
  ``--all-versions`` adds the pictures only older published versions hold.
* :mod:`trainer.builders.subject_masks` - the masks it draws (face + GrabCut, object, random shape).
* :mod:`trainer.builders.held_out` - the pictures reserved for evaluation (``held_out_pictures.tsv``:
  md5 and dHash), recognised byte for byte or as near-duplicates; no builder uses them.
* :mod:`trainer.builders.package_history` - pictures from old versions of the template bundles: picks
  a few versions that together hold them all (greedy), downloads them once into a cache, drops duplicates and
  reserved pictures: ``python -m trainer.builders.package_history``.
* :mod:`trainer.builders.synthetic_set` - a frozen synthetic harmonisation set (composite, mask,
  real; FFHQH layout) from a folder of photos: ``python -m trainer.builders.synthetic_set PHOTOS OUT``.
  The composites come from :mod:`trainer.data.synthesis`, the same code that makes them on the fly.
* :mod:`trainer.builders.staging` - both sets are built beside their folder and put in place whole: a
  rebuild leaves nothing of the old set, an interrupted one leaves it as it was.
"""
