"""dreamkit: DreamerV2-family world-model reinforcement learning as gin components."""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(
    r"__version__ = '([^']+)'",
    (Path(__file__).parent / 'dreamkit' / '__init__.py').read_text()).group(1)

setup(
    name='dreamkit',
    version=version,
    description='DreamerV2-family world-model RL with swappable gin components.',
    long_description=Path('README.md').read_text() if Path('README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.11,<3.12',
    packages=find_packages(include=['dreamkit', 'dreamkit.*']),
    include_package_data=True,
    # The published DreamerV2 scores and their README (figures, with the citation).
    package_data={'dreamkit.scores': ['*.csv', '*.csv.gz', 'README.md']},
    install_requires=[
        'tensorflow==2.21.*',
        'tensorflow-probability[tf]==0.25.*',
        'tf_keras==2.21.*',
        'keras>=3.10,<4',
        'gin-config==0.5.0',
        'gymnasium[classic-control]>=1.0,<2',  # pygame: pixels of classic-control envs
        'ale-py==0.12.*',
        'dm_control>=1.0,<1.1',
        'mujoco>=3,<4',
        'h5py>=3.10',
        'click>=8.1',
        'numpy>=1.26',
        'psutil>=5.9',
        'imageio>=2.30',
        'pillow>=10',
        'tensorboard>=2.21,<2.22',  # to view runs; writing needs only TensorFlow
        'matplotlib>=3.8',  # `dreamkit plot`
        'pandas>=2',
        'ray[tune]==2.60.*',  # `dreamkit sweep`: trials as processes, local or on a cluster
        'rliable>=1.2,<2',  # `dreamkit compare`: IQM / median with stratified bootstrap CIs
        'optuna>=4',  # `Sweep.search = @tune.OptunaSearch`: hyperparameter searches
    ],
    extras_require={
        'test': ['pytest>=8', 'pytest-timeout>=2.3', 'pandas>=2'],
    },
    entry_points={'console_scripts': ['dreamkit=dreamkit.cli:main']},
)
