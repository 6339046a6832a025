"""The patient's health record: imported from FHIR R4, results released by the rules, visits, documents, home
readings, medicines (refill requests go to the shared inbox), exports; and the clinicians' results queue."""
