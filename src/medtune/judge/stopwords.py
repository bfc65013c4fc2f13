"""English and Spanish stop words: the words a key point is never made of (folded: lower case, no accents).

Our own short lists (function words, auxiliaries, very general verbs and adverbs) rather than a
dependency: the reference judge only needs to drop words that carry no medical content.
"""

from __future__ import annotations

_ENGLISH_WORDS = """
a about above after again against all almost also although always am among an and any are aren't around as at
be became because become becomes been before being below between both but by can cannot could did do does doing
done down during each either else enough especially etc even ever every few for from further get gets getting give
given gives go goes going got had has have having he her here hers herself him himself his how however i if in
into is isn't it it's its itself just least less like likely made make makes many may maybe me might more most
mostly much must my myself near need needed needs neither never no nor not now of off often on once one only or
other others otherwise our ours ourselves out over own per perhaps please quite rather really same several shall
she should since so some something sometimes such than that the their theirs them themselves then there these
they thing things this those though through thus to too toward towards under until up upon us usually use used
uses using very via was wasn't way we well were what whatever when where whether which while who whom whose why
will with within without would yes yet you your yours yourself yourselves aren isn wasn don doesn didn
"""

_SPANISH_WORDS = """
a al algo algun alguna algunas alguno algunos ante antes aqui asi aun aunque bajo bien cada casi como con contra
cual cuales cuando de del desde donde dos durante e el ella ellas ello ellos en entre era eran es esa esas ese eso
esos esta estaba estado estan estar estas este esto estos fue fueron gran ha haber habia han hasta hay hace hacen
hacer la las le les lo los mas me mi mientras mismo mucho muchos muy nada ni no nos nosotros o otra otras otro
otros para pero poco por porque puede pueden que quien se sea segun ser si sido siempre sin sino sobre solo son
su sus tambien tan tanto te tiene tienen toda todas todo todos tras tu un una unas uno unos usted ustedes y ya yo
"""

ENGLISH = frozenset(_ENGLISH_WORDS.split())
SPANISH = frozenset(_SPANISH_WORDS.split())
STOP_WORDS = ENGLISH | SPANISH
