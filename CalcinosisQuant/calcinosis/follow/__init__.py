"""Lesions followed from baseline to follow-up (issue 14): two result folders of the same
patient, the follow-up image registered to the baseline's, each lesion matched and classed.

* :mod:`.results` - a result folder (``measure``, ``hand`` or ``spine``) as the follow-up reads it;
* :mod:`.register` - the rigid motion between the two images (SimpleITK);
* :mod:`.match` - lesions matched by overlap and distance, in groups (one-to-one, split, merged);
* :mod:`.pipeline` - the tables: one row per lesion group, and per patient / digit / level.
"""
