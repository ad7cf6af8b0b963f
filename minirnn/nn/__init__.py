"""Modules that own parameters and gradients and call ``minirnn.functional``."""

from .charrnn import CharRNN
from .convlstm import ConvLSTM, NextFrameModel
from .gpt import GPT, GPTState
from .module import Dropout, Embedding, Linear, Module
from .recurrent import GRU, LSTM, RNN, Recurrent, RecurrentCell
from .seq2seq import AdditiveAttention, Seq2Seq

__all__ = ["Module", "Embedding", "Linear", "Dropout", "Recurrent", "RNN", "LSTM", "GRU",
           "CharRNN", "AdditiveAttention", "RecurrentCell", "Seq2Seq",
           "ConvLSTM", "NextFrameModel", "GPT", "GPTState"]
