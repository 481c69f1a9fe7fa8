"""Text analysis: tokenise, lowercase, drop stopwords, stem."""

from rankstack.text.analysis import Analyzer, english_analyzer
from rankstack.text.stopwords import STOPWORDS

__all__ = ["STOPWORDS", "Analyzer", "english_analyzer"]
