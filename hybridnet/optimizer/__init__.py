"""``mx.optimizer``: update rules, their registry, and the Updater that owns their states.

    >>> opt = mx.optimizer.create('sgd', learning_rate=0.1, momentum=0.9, wd=1e-4)
    >>> updater = mx.optimizer.get_updater(opt)
    >>> updater(0, grad, weight)            # weight updated in place (engine work)

Registered names: sgd, ccsgd, nag, signum, lars, lbsgd, test (``sgd.py``); adam, adamax, nadam, lamb
(``adam.py``); adagrad, adadelta, rmsprop, groupadagrad (``adagrad.py``); ftrl, ftml, dcasgd, sgld
(``ftrl.py``). See ``optimizer.py`` for the base class, ``to_spec`` / ``from_spec`` and the
``Updater`` state formats.
"""
from __future__ import annotations

from .optimizer import Optimizer, Updater, create, from_spec, get_updater, register
from .sgd import LARS, LBSGD, NAG, SGD, Signum, Test, ccSGD
from .adam import LAMB, Adam, Adamax, Nadam
from .adagrad import AdaDelta, AdaGrad, GroupAdaGrad, RMSProp
from .ftrl import DCASGD, FTML, SGLD, Ftrl
from . import contrib

__all__ = ["Optimizer", "Updater", "create", "from_spec", "get_updater", "register",
           "SGD", "ccSGD", "NAG", "Signum", "LARS", "LBSGD", "Test", "Adam", "Adamax", "Nadam",
           "LAMB", "AdaGrad", "AdaDelta", "RMSProp", "GroupAdaGrad", "Ftrl", "FTML", "DCASGD", "SGLD",
           "contrib"]
