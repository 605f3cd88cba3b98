"""What only ``whoopadmin demo`` needs: its DNS zone with prepared mistakes, the wizard's
"publish these records" button, the demo receiver of deliveries, and its console."""
