"""Catalog: the doors a plan can use.

Takes Seam's ``/devices/list`` (``sources``: from Seam, or a saved answer for ``--devices``);
gives a DeviceCatalog (``doors``): the dormakaba Oracode doors with their site, zone and user
levels as Polars tables, keyed by device_id and by their names made comparable. Malformed
device data is a DeviceDataError naming the device. ``checks`` holds the config's names up
against the doors (one warning each, with the closest names); ``listing`` lays the doors out
for an operator (``oracode-provision doors``); ``looking`` lists the codes on a door (one list
per door, the tags found in their names), for budget and apply.
"""
