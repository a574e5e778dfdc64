"""The global Keras precision policy from the `precision` setting (32, 16 or 'bf16')."""

import keras
import tensorflow as tf

from dreamkit.errors import ConfigError

CHOICES = (32, 16, 'bf16')


def set_precision(precision, float16_anyway=False):
  """Sets the global Keras policy and returns its name.

  32 -> 'float32'; 'bf16' -> 'mixed_bfloat16'; 16 -> 'mixed_float16' when a GPU is
  visible. Without a GPU, 16 falls back to 'mixed_bfloat16' with a one-line notice:
  float16 convolutions run 30-400x slower than float32 on CPUs, while bfloat16 uses
  the CPU's AMX/AVX512-BF16 units. `float16_anyway=True` keeps 'mixed_float16' on a
  CPU (tests use it to exercise loss scaling).
  """
  if isinstance(precision, str) and precision.strip().isdigit():
    precision = int(precision)
  if precision == 32:
    name = 'float32'
  elif precision == 'bf16':
    name = 'mixed_bfloat16'
  elif precision == 16:
    if float16_anyway or tf.config.list_physical_devices('GPU'):
      name = 'mixed_float16'
    else:
      name = 'mixed_bfloat16'
      print('precision 16: no GPU visible, using mixed_bfloat16 instead of '
            'mixed_float16 (float16 is 30-400x slower on CPUs).')
  else:
    raise ConfigError(
        f'Unknown precision {precision!r}. Use 32 (float32), 16 (mixed float16 on a '
        "GPU, bfloat16 on a CPU) or 'bf16' (mixed bfloat16).")
  keras.mixed_precision.set_global_policy(name)
  return name
