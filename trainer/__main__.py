"""``python -m trainer``: list the trainer's commands."""
import sys

COMMANDS = """PHNet trainer commands (each has --help):

  python -m trainer.fit                         train or fine-tune (torchrun for DDP); --resume continues a run
  python -m trainer.evaluate                    MSE/fMSE/PSNR/fPSNR tables and a grid, with baselines
  python -m trainer.calibrate                   choose the do-no-harm threshold on the validation split
  python -m trainer.push                        upload a checkpoint folder to the Hugging Face Hub
  python -m trainer.builders.synthetic_set      write a synthetic set (FFHQH layout) from a folder of photos
  python -m trainer.builders.package_portraits  build the default training set from installed packages
  python -m trainer.builders.package_history    the earlier template bundles' pictures, for a wider photo pool
  python -m trainer.builders.source_subset      a pool with part of its training photos, for trainer.photo_curve
  python -m trainer.photo_curve                 held-out error against the number of training photos
  python -m trainer.real_pastes                 real pastes of people onto other photos, each model's result

Configs: trainer/configs/*.toml (python -m trainer.fit --config NAME --print-config shows one)
Documentation: trainer/README.md in the repository, https://github.com/comfyui-phnet/comfyui-phnet/tree/main/trainer
"""

if __name__ == "__main__":
    sys.stdout.write(COMMANDS)
    sys.exit(0)
