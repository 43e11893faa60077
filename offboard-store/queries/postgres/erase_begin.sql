SET LOCAL offboard.erasing = 'on'
