"""FHIR R4 in and out: importer.py (Bundles and bulk ndjson → our tables) and export.py (our tables →
a FHIR R4 Bundle).

Models: fhir.resources 8.x defaults to R5; we validate with its R4B package (`fhir.resources.R4B`),
which reads R4 (4.0.1) data for every resource we import: the R4→R4B changes touch none of their fields
(they add Citation/Evidence/… resources and change MedicationKnowledge, SubscriptionTopic and the like,
none of which we read). The R5 models would refuse R4 data (e.g. Encounter.class is a list in R5,
MedicationRequest.medication is a CodeableReference).
"""
