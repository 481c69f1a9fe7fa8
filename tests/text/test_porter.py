"""The Porter stemmer against the examples of Porter's paper and the reference implementation's departures."""

import pytest

from rankstack.text.porter import _stem, porter_stem

PAPER = """caresses caress ponies poni ties ti caress caress cats cat feed feed agreed agre plastered plaster
bled bled motoring motor sing sing conflated conflat troubled troubl sized size hopping hop tanned tan
falling fall hissing hiss fizzed fizz failing fail filing file happy happi sky sky relational relat
conditional condit rational ration valenci valenc hesitanci hesit digitizer digit conformabli conform
radicalli radic differentli differ vileli vile analogousli analog vietnamization vietnam predication predic
operator oper feudalism feudal decisiveness decis hopefulness hope callousness callous formaliti formal
sensitiviti sensit sensibiliti sensibl triplicate triplic formative form formalize formal electriciti electr
electrical electr hopeful hope goodness good revival reviv allowance allow inference infer airliner airlin
gyroscopic gyroscop adjustable adjust defensible defens irritant irrit replacement replac adjustment adjust
dependent depend adoption adopt communism commun activate activ angulariti angular homologous homolog
effective effect bowdlerize bowdler probate probat rate rate cease ceas controll control roll roll"""

# where Lucene's (Porter's reference) version departs from the paper and from Snowball's "porter"
DEPARTURES = {"anthropology": "anthropolog", "apologies": "apolog", "assembly": "assembl", "ay": "ay", "1s": "1s"}


@pytest.mark.parametrize(("word", "stem"), list(zip(PAPER.split()[::2], PAPER.split()[1::2], strict=True)))
def test_paper_examples(word, stem):
    assert _stem(word) == stem


@pytest.mark.parametrize(("word", "stem"), DEPARTURES.items())
def test_reference_implementation_departures(word, stem):
    assert porter_stem(word) == stem == porter_stem(word)  # and again from the cache
