"""Write-back in the CRM's formats: stored scores as Salesforce, HubSpot or canonical import files.

:mod:`.formats` is pure (fields, default mappings, cell formatting); :mod:`.job` reads the
warehouse's score tables, writes the files atomically and records what was exported.
"""
