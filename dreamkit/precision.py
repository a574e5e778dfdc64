"""The global Keras precision policy from the `precision` setting (32, 16 or 'bf16')."""

import re

import keras
import tensorflow as tf

from dreamkit import validate
from dreamkit.errors import ConfigError

CHOICES = (32, 16, 'bf16')


def check(precision, where='Pipeline.precision'):
  """`precision` as one of CHOICES ('32' and '16', as a shell passes them, are 32 and
  16); a ConfigError naming `where` lists them otherwise."""
  if isinstance(precision, str) and precision.strip().isdigit():
    precision = int(precision)
  if isinstance(precision, float) and precision in (32, 16):
    precision = int(precision)
  if precision in CHOICES and not isinstance(precision, bool):
    return precision
  raise ConfigError(
      f"{validate.binding(where)} must be one of: 32 (float32), 16 (mixed float16 on a "
      "GPU; on a CPU bfloat16 or float32) or 'bf16' (mixed bfloat16); got "
      f'{precision!r}.')


def cpu_has_bf16():
  """True when this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX, Linux)."""
  try:
    with open('/proc/cpuinfo') as cpuinfo:
      flags = cpuinfo.read()
  except OSError:
    return False
  return bool(re.search(r'\b(avx512_bf16|amx_bf16)\b', flags))


def set_precision(precision, float16_anyway=False):
  """Sets the global Keras policy and returns its name.

  32 -> 'float32'; 'bf16' -> 'mixed_bfloat16'; 16 -> 'mixed_float16' when a GPU is
  visible. Without a GPU, 16 falls back with a one-line notice, because float16
  convolutions run 30-400x slower than float32 on CPUs: to 'mixed_bfloat16' on a CPU
  with bfloat16 units (AMX / AVX512-BF16, where it trained ~1.4x faster than
  float32), else to 'float32' (emulated bfloat16 is slower than float32).
  `float16_anyway=True` keeps 'mixed_float16' on a CPU (tests use it to exercise
  loss scaling).
  """
  precision = check(precision)
  if precision == 32:
    name = 'float32'
  elif precision == 'bf16':
    name = 'mixed_bfloat16'
  elif precision == 16:
    if float16_anyway or tf.config.list_physical_devices('GPU'):
      name = 'mixed_float16'
    elif cpu_has_bf16():
      name = 'mixed_bfloat16'
      print('precision 16: no GPU visible, using mixed_bfloat16 (this CPU has '
            'bfloat16 units) instead of mixed_float16 (30-400x slower on CPUs).')
    else:
      name = 'float32'
      print('precision 16: no GPU visible and no bfloat16 units on this CPU, using '
            'float32 instead of mixed_float16 (30-400x slower on CPUs).')
  keras.mixed_precision.set_global_policy(name)
  return name
